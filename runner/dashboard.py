"""The console's home page: what the runner is doing, what failed, what comes next.

``dashboard(now)`` gathers it in a fixed number of queries (no query per job or
queue); the admin index shows it above the model list (runner/admin.py hooks it
in, the template is admin/index.html).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Value
from django.db.models.functions import Concat

from queues.status import queue_statuses
from runner import admin_fires
from runner.admin_fires import Soonest
from runner.health import ERROR_STATUSES, Health, health_summary
from runner.models import Job, Run, RunStatus

# How far back "failures" look, how many running runs and next fires are listed.
FAILURE_WINDOW = timedelta(hours=24)
LIST_LIMIT = 10
# The next-fires panel reads at most this long of schedules not read before (see
# runner.admin_fires): 10,000 jobs of distinct schedules fill in over a few loads.
NEXT_FIRES_BUDGET_S = 0.1


@dataclass(frozen=True)
class Failure:
    """A job's failures in the window: how many, and its latest failed run."""

    job_id: str
    count: int
    latest: Run


@dataclass(frozen=True)
class Dashboard:
    health: Health
    running: list[tuple[Run, float]]  # (run, elapsed seconds)
    failures: list[Failure]
    next_fires: list[tuple[datetime, Job]]
    next_fires_read: Soonest  # how many distinct schedules the panel could read
    queues: list[dict[str, Any]]
    busy_workers: int = 0  # workers whose running runs beat within the liveness bound


def dashboard(now: datetime) -> Dashboard:
    """Everything the home page shows, at ``now``."""
    next_fires, read = _next_fires(now)
    return Dashboard(
        health=health_summary(now),
        running=_running(now),
        failures=_failures(now),
        next_fires=next_fires,
        next_fires_read=read,
        queues=queue_statuses(),
        busy_workers=_busy_workers(now),
    )


def _busy_workers(now: datetime) -> int:
    """Distinct workers holding a running run with a fresh heartbeat (runs_active index).

    Idle workers leave no row behind: the backlog (pending runs and the oldest one's
    wait) is what says whether there are workers enough.
    """
    fresh = now - timedelta(milliseconds=settings.RUNNER.liveness_timeout_ms)
    running = Run.objects.filter(status=RunStatus.RUNNING, heartbeat_at__gte=fresh)
    return running.order_by().values("worker").distinct().count()


def _running(now: datetime) -> list[tuple[Run, float]]:
    runs = Run.objects.filter(status=RunStatus.RUNNING).order_by("started_at")[:LIST_LIMIT]
    return [
        (run, max(0.0, (now - (run.started_at or run.created_at)).total_seconds())) for run in runs
    ]


def _failures(now: datetime) -> list[Failure]:
    # The window's runs through runs_finished_at (a failed run has finished). Grouped by
    # job_id || '', since grouped by the column itself SQLite walks all of runs_job_newest
    # (every run, 0.8 s at a million) rather than the day's range.
    failed = Run.objects.filter(status__in=ERROR_STATUSES, finished_at__gte=now - FAILURE_WINDOW)
    groups = list(
        failed.order_by()
        .values(group=Concat("job_id", Value("")))
        .annotate(count=Count("id"), latest=Max("id"))
    )
    groups.sort(key=lambda group: -group["latest"])
    groups = groups[:LIST_LIMIT]
    latest = Run.objects.in_bulk([group["latest"] for group in groups])
    return [Failure(g["group"], g["count"], latest[g["latest"]]) for g in groups]


def _next_fires(now: datetime) -> tuple[list[tuple[datetime, Job]], Soonest]:
    rows = Job.objects.filter(enabled=True).order_by().values_list("id", "schedule", "timezone")
    zones = {job_id: zone for job_id, _, zone in rows}
    found = admin_fires.soonest(
        ((job_id, text, zone or settings.TIME_ZONE) for job_id, text, zone in rows),
        now,
        LIST_LIMIT,
        NEXT_FIRES_BUDGET_S,
    )
    # Unsaved jobs carry what the panel shows (id, zone): no second query.
    fires = [(at, Job(id=job_id, timezone=zones[job_id])) for at, job_id in found.fires]
    return fires, found
