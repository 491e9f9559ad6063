"""The ``runscheduler`` loop: the clock, the liveness checks, maintenance and the workers.

One thread does everything in turn, waking for the earliest thing due; fires come
first in every cycle. A stop signal only sets an event, and every sleep is a wait
on that event, so a stop is noticed at once. In-process workers are a django-q2
cluster in child processes (``runner.cluster``); a stop gives their running jobs
the shutdown grace, then ends them and records how they ended.

Cron instants are read from the wall clock; every interval (reconcile, liveness,
heartbeat, maintenance, the sleep) runs on the monotonic clock, so a step of the
wall clock neither stalls the loop nor makes it rush (``runner.clocks``).

When the database does not answer (down, locked, disk full) the loop backs off
(1 s, doubling, at most ``MAX_OUTAGE_RETRY_S``), says so once, and once more on
recovery with what was held back; fires due meanwhile are recorded then, those
more than ``LATE_FIRE_IS_MISSED`` late under their job's missed-fire policy.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections

from jeeves_site.config_live import refresh_runner_config
from runner import cluster as runner_cluster
from runner import coalesce
from runner.clocks import SYSTEM, Clocks
from runner.execution.completion import worker_name
from runner.execution.inline_files import prepare_worker_host
from runner.health import backlog_at
from runner.liveness import Liveness, check_interval
from runner.maintenance import run_maintenance
from runner.models import SchedulerHeartbeat
from runner.scheduler import LATE_FIRE_IS_MISSED, Scheduler
from runner.watch import Watch

logger = logging.getLogger(__name__)

# The loop looks at the clock at least this often, whatever is planned (seconds).
MAX_SLEEP_S = 1.0
# Maintenance gets at most this long per cycle, and only when no dispatch is due
# sooner than that plus a margin: it must never make a fire late.
MAINTENANCE_BUDGET = timedelta(milliseconds=500)
MAINTENANCE_MARGIN = timedelta(milliseconds=50)
# Pending runs overtaken by their job's schedule are looked for this often (seconds).
COALESCE_INTERVAL_S = 1.0
# An unreachable database is tried again after 1 s, then twice as long each time,
# at most this far apart (start-up and running alike).
FIRST_OUTAGE_RETRY_S = 1.0
MAX_OUTAGE_RETRY_S = 10.0
# A cluster whose sentinel died is started again, at most this many times.
MAX_CLUSTER_RESTARTS = 3


@dataclass
class Outage:
    """The database stopped answering at ``since`` (wall) / ``began`` (monotonic)."""

    since: datetime
    began: float
    error: str
    attempts: int = 0
    held_back: dict[str, datetime] = field(default_factory=dict)  # job -> first fire held

    def next_retry_s(self) -> float:
        """Seconds to wait before the next attempt: doubling from 1 s, capped."""
        return min(FIRST_OUTAGE_RETRY_S * 2 ** max(0, self.attempts - 1), MAX_OUTAGE_RETRY_S)


class Daemon:
    """Runs the scheduler until told to stop; ``cycle`` is one pass of the loop."""

    def __init__(self, workers: bool = True, clocks: Clocks = SYSTEM):
        self.workers = workers
        self.clocks = clocks
        self.stopping = threading.Event()
        self.scheduler = Scheduler(monotonic=clocks.monotonic)
        self.liveness = Liveness(monotonic=clocks.monotonic)
        self.watch = Watch(monotonic=clocks.monotonic)  # alerts and retries (runner.watch)
        self.cluster: runner_cluster.RunnerCluster | None = None
        self._cluster_restarts = 0
        # When each periodic unit is next due, on the monotonic clock.
        self._next_reconcile: float | None = None
        self._next_check: float | None = None
        self._next_maintenance: float | None = None
        self._next_beat: float | None = None
        self._next_sweep: float | None = None
        self._coalesced = 0  # runs skipped in the current overload
        # The scheduler whose server zone differs from this one's and came first: while
        # it runs, this one fires nothing (``_judge_zone``).
        self.zone_conflict: SchedulerHeartbeat | None = None
        self.identity = worker_name()
        self.started_at: datetime | None = None
        self.outage: Outage | None = None

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
            clean = runner_cluster.stop_cluster(self.cluster)
            # Not while the database is away: a SQLite write would wait out its busy
            # timeout again; the row is then forgotten by its silence.
            if self.started_at is not None and self.outage is None:
                # A worker frozen through the stop was killed (by the watchdog or at the
                # stop's deadline) holding its run: finished now, not at the next start.
                if self.cluster is not None:
                    now = self.clocks.wall()
                    self.attempt(lambda: self.liveness.reap_dead_local(now, not clean))
                self.attempt(lambda: SchedulerHeartbeat.stopped(self.identity))
            connections.close_all()
            for number, handler in previous.items():
                signal.signal(number, handler)
            logger.info("runscheduler stopped")

    def _loop(self, once: bool) -> int:
        self._start_when_the_database_answers()
        while not self.stopping.is_set():
            answered = self.attempt(self.cycle)
            if once:
                return 0 if answered else 1
            if not self._cluster_healthy():
                return 1
            self.stopping.wait(self.sleep_for() if answered else self.outage.next_retry_s())
        return 0

    def _start_when_the_database_answers(self) -> None:
        while not self.stopping.is_set() and not self.attempt(self.start):
            self.stopping.wait(self.outage.next_retry_s())

    def attempt(self, work: Callable[[], object]) -> bool:
        """Do ``work``; False when the database refused it (then an outage is on)."""
        try:
            work()
        except DatabaseError as exc:
            self._database_failed(exc)
            return False
        self._database_answered()
        return True

    def start(self) -> None:
        """Recover what a previous life left behind, then plan every job."""
        now, mono = self.clocks.wall(), self.clocks.monotonic()
        logger.info(
            "runscheduler starting: %s, lead %s ms",
            "with workers" if self.cluster else "clock only",
            settings.RUNNER.dispatch_lead_ms,
        )
        self.liveness.check(now)
        self.scheduler.start(now)
        # Runs a previous life left pending that are overtaken by now are not run late.
        coalesce.sweep(now, started_at=now)
        self.started_at = now
        self._next_beat = mono
        self._next_reconcile = mono + settings.RUNNER.reconcile_interval_ms / 1000
        self._next_check = mono + check_interval().total_seconds()
        self._next_maintenance = mono
        self._next_sweep = mono + COALESCE_INTERVAL_S

    def cycle(self) -> bool:
        """One pass: due fires first, then whatever else is due. True if any found work.

        Raises DatabaseError when the database refused a unit of work; the units
        leave their state consistent, so the next cycle carries on where this one
        stopped.
        """
        close_old_connections()
        now, mono = self.clocks.wall(), self.clocks.monotonic()
        if mono >= self._next_beat:
            # What /api/status and runner_status read: this scheduler's uptime and liveness.
            self._next_beat = mono + settings.RUNNER.heartbeat_interval_ms / 1000
            self._guarded(self._beat, now)
        found = self._fire_due(now)
        if mono >= self._next_reconcile:
            self._guarded(refresh_runner_config)  # a changed config file applies from here on
            self._next_reconcile = mono + settings.RUNNER.reconcile_interval_ms / 1000
            if self._guarded(self.scheduler.reconcile, now):
                found = True
                found |= self._fire_due(now)
        if mono >= self._next_sweep:
            self._next_sweep = mono + COALESCE_INTERVAL_S
            found |= self._coalesce(now)
        if mono >= self._next_check:
            self._next_check = mono + check_interval().total_seconds()
            found |= self._guarded(self.liveness.check, now)
        found |= bool(self._guarded(self.watch.tick, now))  # keeps its own intervals
        if mono >= self._next_maintenance:
            found |= self._maintain(now, mono)
        return found

    def _fire_due(self, now: datetime) -> bool:
        if self.zone_conflict is not None:
            return False
        return bool(self._guarded(self.scheduler.fire_due, now))

    def _beat(self, now: datetime) -> None:
        SchedulerHeartbeat.beat(self.identity, self.started_at, now, settings.TIME_ZONE)
        self._judge_zone(now)

    def _judge_zone(self, now: datetime) -> None:
        """Stand by while a scheduler that came first uses another server zone.

        A job without a timezone fires in the server's zone; two schedulers that disagree
        on it compute different instants for it, which no claim on (job, instant) can
        tell apart, and the job fires twice (a probe, 2026-12-01). The first one keeps
        firing; this one resumes when the zones agree or the other is gone.
        """
        since = now - timedelta(milliseconds=settings.RUNNER.liveness_timeout_ms)
        leader = SchedulerHeartbeat.zone_leader(since)
        conflict = None
        if leader is not None and leader.worker != self.identity:
            conflict = leader if leader.time_zone != settings.TIME_ZONE else None
        if conflict is not None and self.zone_conflict is None:
            logger.error(
                "standing by, firing nothing: this scheduler's server zone is %s, but %s "
                "(running since %s) fires jobs without a timezone in %s, so they would fire "
                "twice. Give every scheduler sharing this database the same zone "
                "(JEEVES_TIME_ZONE), or a timezone to every job",
                settings.TIME_ZONE,
                conflict.worker,
                conflict.started_at.isoformat(timespec="seconds"),
                conflict.time_zone,
            )
        elif conflict is None and self.zone_conflict is not None:
            logger.info("firing again: the schedulers sharing this database agree on the zone")
        self.zone_conflict = conflict

    def sleep_for(self) -> float:
        """Seconds until the next thing is due (at most ``MAX_SLEEP_S``)."""
        now, mono = self.clocks.wall(), self.clocks.monotonic()
        waits = [MAX_SLEEP_S]
        next_dispatch = self.scheduler.next_dispatch_at()
        if next_dispatch is not None and self.zone_conflict is None:  # standing by: no fires
            waits.append((next_dispatch - now).total_seconds())
        for due in (
            self._next_reconcile,
            self._next_check,
            self._next_maintenance,
            self._next_beat,
            self._next_sweep,
        ):
            if due is not None:
                waits.append(due - mono)
        return max(0.0, min(waits))

    def _maintain(self, now: datetime, mono: float) -> bool:
        """Housekeeping in small batches, within what the next fire leaves free."""
        budget = MAINTENANCE_BUDGET
        next_dispatch = self.scheduler.next_dispatch_at()
        if next_dispatch is not None:
            budget = min(budget, next_dispatch - now - MAINTENANCE_MARGIN)
        if budget <= timedelta(0):
            return False  # a fire is due first; try again next cycle
        report = self._guarded(run_maintenance, now, budget.total_seconds())
        more = bool(report and report.more)
        interval = settings.RUNNER.state_cleanup_interval_ms / 1000
        self._next_maintenance = mono if more else mono + interval
        return bool(report and report.total)

    def _coalesce(self, now: datetime) -> bool:
        """Skip overtaken pending runs; say once when an overload starts and when it ends.

        It ends when a sweep skips nothing and the backlog is within the bounds
        ``/api/status`` judges it by: a sweep between two skips of a frozen worker's
        runs finds nothing overtaken yet, while its runs still wait.
        """
        skipped = self._guarded(coalesce.sweep, now, self.started_at)
        if skipped and not self._coalesced:
            logger.warning(
                "runs are due faster than workers start them: pending runs their job's "
                "schedule overtook are skipped (each says why; /api/status shows the backlog)"
            )
        elif not skipped and self._coalesced and not backlog_at(now).over_bounds:
            logger.info("the backlog is cleared; %d overtaken run(s) were skipped", self._coalesced)
            self._coalesced = 0
        self._coalesced += skipped or 0
        return bool(skipped)

    def _database_failed(self, exc: DatabaseError) -> None:
        """Note a refusal: logged once per outage; what the scheduler holds back is kept."""
        if self.outage is None:
            error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
            self.outage = Outage(self.clocks.wall(), self.clocks.monotonic(), error)
            logger.error(
                "the database does not answer (%s); fires are held and tried again with "
                "backoff up to %g s (logged once until it answers)",
                error,
                MAX_OUTAGE_RETRY_S,
            )
        self.outage.attempts += 1
        for job_id, at in self.scheduler.held_back.items():
            self.outage.held_back.setdefault(job_id, at)
        close_old_connections()

    def _database_answered(self) -> None:
        """End an outage: say how long it lasted and what was held back; catch up at once."""
        outage, self.outage = self.outage, None
        if outage is None:
            return
        mono = self.clocks.monotonic()
        held = outage.held_back
        logger.warning(
            "the database answers again after %.1f s (%d attempts); %s",
            mono - outage.began,
            outage.attempts,
            (
                f"{len(held)} job(s) had fires due meanwhile (the first at "
                f"{min(held.values()).isoformat()}), recorded now; those more than "
                f"{LATE_FIRE_IS_MISSED.total_seconds():g} s late under their missed-fire policy"
            )
            if held
            else "no fire was due meanwhile",
        )
        logger.info(
            "the heap holds %d entries for %d planned jobs",
            self.scheduler.heap_size(),
            len(self.scheduler.planned()),
        )
        for name in ("_next_reconcile", "_next_check", "_next_beat"):
            if getattr(self, name) is not None:
                setattr(self, name, mono)

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
        """Run one unit of work; an error is logged and the loop carries on.

        A DatabaseError is not caught: it means the database is down, locked or
        full, and ``attempt`` turns it into an outage with backoff.
        """
        began = time.monotonic()
        try:
            result = work(*args)
        except DatabaseError:
            raise
        except Exception:
            logger.exception("%s failed; carrying on", getattr(work, "__name__", work))
            return False
        took = time.monotonic() - began
        if took > 0.5:
            logger.warning("%s took %.2f s", getattr(work, "__name__", work), took)
        return result
