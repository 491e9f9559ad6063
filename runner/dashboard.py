"""The console's home page: what the runner is doing, what failed, what comes next.

``dashboard(now)`` gathers it in a fixed number of queries (no query per job or
queue); the admin index shows it above the model list (runner/admin.py hooks it
in, the template is admin/index.html).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max

from queues.status import queue_statuses
from runner.health import ERROR_STATUSES, Health, health_summary
from runner.models import Job, Run, RunStatus

# How far back "failures" look, how many running runs and next fires are listed.
FAILURE_WINDOW = timedelta(hours=24)
LIST_LIMIT = 10


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
    queues: list[dict[str, Any]]


def dashboard(now: datetime) -> Dashboard:
    """Everything the home page shows, at ``now``."""
    return Dashboard(
        health=health_summary(now),
        running=_running(now),
        failures=_failures(now),
        next_fires=_next_fires(now),
        queues=queue_statuses(),
    )


def _running(now: datetime) -> list[tuple[Run, float]]:
    runs = Run.objects.filter(status=RunStatus.RUNNING).order_by("started_at")[:LIST_LIMIT]
    return [
        (run, max(0.0, (now - (run.started_at or run.created_at)).total_seconds())) for run in runs
    ]


def _failures(now: datetime) -> list[Failure]:
    failed = Run.objects.filter(status__in=ERROR_STATUSES, created_at__gte=now - FAILURE_WINDOW)
    groups = list(failed.order_by().values("job_id").annotate(count=Count("id"), latest=Max("id")))
    groups.sort(key=lambda group: -group["latest"])
    groups = groups[:LIST_LIMIT]
    latest = Run.objects.in_bulk([group["latest"] for group in groups])
    return [Failure(g["job_id"], g["count"], latest[g["latest"]]) for g in groups]


def _next_fires(now: datetime) -> list[tuple[datetime, Job]]:
    jobs = Job.objects.filter(enabled=True).only("id", "name", "schedule", "timezone", "enabled")
    fires = []
    for job in jobs:
        try:
            fires.append((job.next_fire_after(now), job.pk, job))
        except Exception:  # a schedule that does not load is listed under failed registrations
            continue
    return [(at, job) for at, _, job in heapq.nsmallest(LIST_LIMIT, fires)]
