"""The runner's health at a glance: what ``/api/status`` and ``runner_status`` report.

Everything is read from the database, so any web process or host sees the same
answer: jobs and runs from their tables, the scheduler's uptime from its
heartbeat row (``SchedulerHeartbeat``), failed registrations as the enabled
jobs whose schedule or zone the scheduler cannot load, and late jobs
(``runner.lateness``: due to fire, no run for longer than their grace), computed
here from the runs rather than read from the incidents, so a monitor polling the
status sees them even when the scheduler that raises ``late`` alerts is down.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Count, F, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from runner import coalesce, validation
from runner.lateness import LateJob, late_jobs_now
from runner.models import Job, Run, RunStatus, SchedulerHeartbeat
from runner.scheduler import LATE_FIRE_IS_MISSED

NAME = "runner"
ERROR_STATUSES = (RunStatus.ERROR, RunStatus.TIMEOUT)
# The backlog (runs waiting for a worker) makes the status "degraded" beyond either
# bound: more pending runs than this, or the oldest waiting longer than this. Runs
# that waited for a worker and were skipped unstarted within the last
# BACKLOG_MAX_AGE_S degrade it too: overload coalescing skips a run once it is 10 s
# late, which keeps the oldest pending run young while no run starts at all.
BACKLOG_MAX_PENDING = 1000
BACKLOG_MAX_AGE_S = 60.0
# /api/status lists at most this many late jobs (the count is always whole).
LATE_LISTED = 100


# A skipped run that never started waited for a worker when it was skipped at least
# LATE_FIRE_IS_MISSED after both its instant and its record: a retry is recorded a
# backoff before its instant, a missed-fire summary long after its instant, and an
# overlap skip at dispatch at its instant, so none of those counts.
_WAITED_FOR_A_WORKER = Q(finished_at__gte=F("created_at") + LATE_FIRE_IS_MISSED) & Q(
    finished_at__gte=Coalesce("scheduled_for", "created_at") + LATE_FIRE_IS_MISSED
)


@dataclass(frozen=True)
class Backlog:
    """The runs waiting for a worker at one moment (``backlog_at``)."""

    pending: int  # runs waiting for a worker
    # how long past its instant the oldest has waited (catch-up runs left out)
    oldest_pending_s: float | None
    # runs skipped unstarted after waiting LATE_FIRE_IS_MISSED or more, in the last
    # BACKLOG_MAX_AGE_S (overtaken by their schedule, or by a sibling that started first)
    skipped_waiting: int

    @property
    def over_bounds(self) -> bool:
        """More runs wait, or wait longer, than ``BACKLOG_MAX_PENDING``/``BACKLOG_MAX_AGE_S``,
        or runs that waited for a worker were skipped unstarted within ``BACKLOG_MAX_AGE_S``."""
        age = self.oldest_pending_s or 0.0
        return (
            self.pending > BACKLOG_MAX_PENDING
            or age > BACKLOG_MAX_AGE_S
            or self.skipped_waiting > 0
        )


@dataclass(frozen=True)
class Health:
    """One health summary; ``as_json`` gives the original runner's field names."""

    version: str
    uptime_s: float | None  # of the longest-running live scheduler; None when none is alive
    schedulers: int
    total_jobs: int
    running: int
    failed_registrations: tuple[str, ...]  # job ids
    ok_last_hour: int
    errors_last_hour: int
    backlog: Backlog = Backlog(pending=0, oldest_pending_s=None, skipped_waiting=0)
    late: tuple[LateJob, ...] = ()  # jobs due to fire with no run past their grace
    # The live schedulers' server zones: more than one, and all but the first stand by.
    zones: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        """``ok`` when a scheduler is alive, every enabled job's schedule loads, the
        backlog is within its bounds, no job is late and the live schedulers agree on
        the server zone; otherwise ``degraded``."""
        healthy = (
            self.schedulers
            and not self.failed_registrations
            and not self.backlog.over_bounds
            and not self.late
            and len(self.zones) <= 1
        )
        return "ok" if healthy else "degraded"

    def as_json(self) -> dict:
        """The body of ``GET /api/status``."""
        return {
            "name": NAME,
            "version": self.version,
            "uptime": self.uptime_s,
            "status": self.status,
            "health": {
                "totalJobs": self.total_jobs,
                "running": self.running,
                "failedRegistrations": len(self.failed_registrations),
                "okLastHour": self.ok_last_hour,
                "errorsLastHour": self.errors_last_hour,
                "schedulers": self.schedulers,
                "schedulerZones": list(self.zones),
                "failedJobs": list(self.failed_registrations),
                "backlog": {
                    "pending": self.backlog.pending,
                    "oldestPendingAge": (
                        None
                        if self.backlog.oldest_pending_s is None
                        else round(self.backlog.oldest_pending_s * 1000)
                    ),
                    "skippedWaiting": self.backlog.skipped_waiting,
                    "maxPending": BACKLOG_MAX_PENDING,
                    "maxAge": round(BACKLOG_MAX_AGE_S * 1000),
                },
                "late": len(self.late),
                "lateJobs": [job.as_json() for job in self.late[:LATE_LISTED]],
            },
        }


def health_summary(now: datetime | None = None) -> Health:
    """Compute the summary at ``now`` (default: the current time)."""
    now = now or timezone.now()
    hour_ago = now - timedelta(hours=1)
    # Two indexed reads (runs_active, runs_finished_at) rather than one scan of every run.
    running = Run.objects.filter(status=RunStatus.RUNNING).count()
    # Counted without GROUP BY: grouped by status, SQLite scans the whole table in the
    # order of runs_status_newest instead of the hour's range of runs_finished_at.
    recent = Run.objects.filter(finished_at__gte=hour_ago).aggregate(
        ok=Count("id", filter=Q(status=RunStatus.OK)),
        failed=Count("id", filter=Q(status__in=ERROR_STATUSES)),
    )
    # A scheduler silent as long as a run's liveness bound is as dead as that run's worker.
    silence = timedelta(milliseconds=settings.RUNNER.liveness_timeout_ms)
    live = SchedulerHeartbeat.heard_since(now - silence)
    schedulers = live.aggregate(n=Count("pk"), since=Min("started_at"))
    since = schedulers["since"]
    zones = live.exclude(time_zone="").order_by("started_at", "worker")
    return Health(
        version=version(),
        uptime_s=round((now - since).total_seconds(), 3) if since else None,
        schedulers=schedulers["n"],
        total_jobs=Job.objects.count(),
        running=running,
        failed_registrations=tuple(failed_registrations()),
        ok_last_hour=recent["ok"],
        errors_last_hour=recent["failed"],
        backlog=backlog_at(now),
        zones=tuple(dict.fromkeys(zones.values_list("time_zone", flat=True))),
        late=tuple(late_jobs_now(now)),
    )


def backlog_at(now: datetime) -> Backlog:
    """The runs waiting for a worker at ``now``, and those skipped after waiting lately."""
    # The runs_active index: only unfinished runs are touched. Catch-up runs are
    # counted but not aged: they wait their turn by design (runner.catchup), for hours
    # after a long downtime, with instants from before it.
    backlog = Run.objects.filter(status=RunStatus.PENDING).aggregate(
        n=Count("id"),
        oldest=Min(Coalesce("scheduled_for", "created_at"), filter=Q(catch_up=False)),
    )
    oldest = backlog["oldest"]
    skipped_waiting = (
        Run.objects.filter(
            finished_at__gte=now - timedelta(seconds=BACKLOG_MAX_AGE_S),
            status=RunStatus.SKIPPED,
            started_at__isnull=True,
            catch_up=False,  # they wait their turn by design (runner.catchup)
        )
        .filter(_WAITED_FOR_A_WORKER)
        .exclude(error__startswith=coalesce.AT_START)  # left by a runner that stopped
        .count()
    )
    return Backlog(
        pending=backlog["n"],
        oldest_pending_s=max(0.0, (now - oldest).total_seconds()) if oldest else None,
        skipped_waiting=skipped_waiting,
    )


def failed_registrations() -> list[str]:
    """Ids of enabled jobs whose schedule or timezone cannot be loaded (stored before a
    rule tightened, or written around the validation layer)."""
    # order_by(): the model's ordering would add the id to DISTINCT, one pair per job.
    pairs = (
        Job.objects.filter(enabled=True).order_by().values_list("schedule", "timezone").distinct()
    )
    bad = [pair for pair in pairs if not _loads(*pair)]
    if not bad:
        return []
    query = Q()
    for schedule, zone in bad:
        query |= Q(schedule=schedule, timezone=zone)
    return list(Job.objects.filter(query, enabled=True).values_list("id", flat=True))


@lru_cache(maxsize=65536)  # ~0.1 ms per check; 10,000 distinct schedules stay cached
def _loads(schedule: str, zone: str) -> bool:
    try:
        validation.validate_schedule(schedule)
        validation.validate_timezone(zone)
    except ValidationError:
        return False
    return True


@lru_cache(maxsize=1)
def version() -> str:
    """The project's version, from pyproject.toml."""
    try:
        with open(settings.BASE_DIR / "pyproject.toml", "rb") as file:
            return tomllib.load(file)["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def describe(health: Health) -> str:
    """The summary as lines for a terminal."""
    uptime = "no scheduler running" if health.uptime_s is None else f"{health.uptime_s:.0f} s"
    failed = ", ".join(health.failed_registrations) or "none"
    return "\n".join(
        [
            f"{NAME} {health.version}: {health.status}",
            f"scheduler uptime: {uptime} ({health.schedulers} alive)",
            f"jobs: {health.total_jobs}, running now: {health.running}",
            f"failed registrations: {len(health.failed_registrations)} ({failed})",
            f"last hour: {health.ok_last_hour} ok, {health.errors_last_hour} errors",
            f"backlog: {health.backlog.pending} pending{_oldest(health)}{_skipped(health)}"
            + (" (over its bounds)" if health.backlog.over_bounds else ""),
            f"late jobs: {len(health.late)}"
            + (f" ({', '.join(job.job_id for job in health.late[:10])})" if health.late else ""),
            *(
                [f"scheduler zones differ: {', '.join(health.zones)}; all but the first stand by"]
                if len(health.zones) > 1
                else []
            ),
        ]
    )


def _oldest(health: Health) -> str:
    if health.backlog.oldest_pending_s is None:
        return ""
    return f", the oldest {health.backlog.oldest_pending_s:.0f} s past its instant"


def _skipped(health: Health) -> str:
    if not health.backlog.skipped_waiting:
        return ""
    return (
        f"; {health.backlog.skipped_waiting} skipped unstarted after waiting for a worker "
        f"in the last {BACKLOG_MAX_AGE_S:g} s"
    )
