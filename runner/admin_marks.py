"""HTML marks the console's lists share: status badges, the strip of last runs, times.

Each returns safe HTML built with ``format_html``; the CSS is runner/static/runner/console.css.
"""

from __future__ import annotations

from datetime import datetime
from statistics import median
from typing import NamedTuple
from zoneinfo import ZoneInfo

from django.db.models import F, Max, Window
from django.db.models.functions import Coalesce, RowNumber
from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

from runner.describe import duration_words, relative_words
from runner.models import NOT_RAN_STATUSES, Run, RunStatus

# How many runs the job list's strip shows, newest last.
STRIP_RUNS = 20
_PLACEHOLDER = 987654321987  # a run id no run has, replaced in the reversed link


def status_badge(status: str, label: str | None = None):
    """A coloured badge for a run status (or "disabled")."""
    return format_html('<span class="jr-badge jr-{}">{}</span>', status, label or status)


def moment(at: datetime | None, zone: str, now: datetime):
    """``2026-11-30 09:30:00 CET`` with ``(in 4 min)`` beside it, in ``zone``."""
    if at is None:
        return "—"
    local = at.astimezone(ZoneInfo(zone))
    return format_html(
        '<span class="jr-when" title="{}">{} <small>({})</small></span>',
        at.isoformat(),
        local.strftime("%Y-%m-%d %H:%M:%S %Z"),
        relative_words(at, now),
    )


class RunMark(NamedTuple):
    """What a strip mark and the median need of a run (read as a row, not a model)."""

    pk: int
    job_id: str
    status: str
    duration_ms: int | None


MARK_FIELDS = RunMark._fields


def recent_runs_by_job(job_ids: list[str], per_job: int = STRIP_RUNS) -> dict[str, list[RunMark]]:
    """Each job's newest ``per_job`` runs, newest first: one query for all the jobs
    (a row number per job over the runs_job_newest index), rows rather than models."""
    ranked = (
        Run.objects.filter(job_id__in=job_ids)
        .annotate(rank=Window(RowNumber(), partition_by=[F("job_id")], order_by=F("id").desc()))
        .filter(rank__lte=per_job)
        .order_by("job_id", "-id")
        .values_list("id", *MARK_FIELDS[1:])
    )
    found: dict[str, list[RunMark]] = {job_id: [] for job_id in job_ids}
    for row in ranked:
        found[row[1]].append(RunMark(*row))
    return found


# When a run was, as the console shows it: its instant (a scheduled run is recorded up to
# the dispatch lead before it, so its record time read a second early), else its start,
# else its record (a manual run not started yet).
RUN_MOMENT = Coalesce("scheduled_for", "started_at", "created_at")


def run_moment(run: Run) -> datetime:
    """``RUN_MOMENT`` of a loaded run."""
    return run.scheduled_for or run.started_at or run.created_at


class LastRuns(NamedTuple):
    """A job's last run that ran (status and time) and its last skipped fire's time."""

    status: str | None = None
    at: datetime | None = None
    skipped_at: datetime | None = None


def last_runs_by_job(job_ids: list[str]) -> dict[str, LastRuns]:
    """For each job, its last run that ran and its last skip: three queries for the lot
    (the newest ids per job through runs_job_newest_ran / _skipped, then those rows)."""
    runs = Run.objects.filter(job_id__in=job_ids).order_by()
    newest = [
        *runs.exclude(status__in=NOT_RAN_STATUSES).values("job_id").annotate(last=Max("id")),
        *runs.filter(status=RunStatus.SKIPPED).values("job_id").annotate(last=Max("id")),
    ]
    rows = Run.objects.filter(pk__in=[row["last"] for row in newest]).values_list(
        "job_id", "status", RUN_MOMENT
    )
    found = {job_id: LastRuns() for job_id in job_ids}
    for job_id, status, at in rows:
        if status == RunStatus.SKIPPED:
            found[job_id] = found[job_id]._replace(skipped_at=at)
        else:
            found[job_id] = found[job_id]._replace(status=status, at=at)
    return found


def run_strip(runs: list[Run] | list[RunMark]):
    """One coloured mark per run, oldest first, each linking to its run (its page has
    the times; reading 2,000 datetimes per list page cost more than the rest of it).

    Built with plain formatting (a list page draws thousands of marks): the link is
    reversed once, the status comes from RunStatus (a check constraint), escaped anyway.
    """
    if not runs:
        return "—"
    link = reverse("admin:runner_run_change", args=[_PLACEHOLDER])
    marks = "".join(
        '<a class="jr-badge jr-{s}" href="{href}" title="#{pk} {s}"></a>'.format(
            s=escape(run.status),
            href=link.replace(str(_PLACEHOLDER), str(int(run.pk))),
            pk=int(run.pk),
        )
        for run in reversed(runs)
    )
    return mark_safe(f'<span class="jr-strip">{marks}</span>')  # escaped above


def median_duration(runs: list[Run] | list[RunMark]) -> str:
    """The median duration of the runs that ran to an end, in words."""
    durations = [
        run.duration_ms
        for run in runs
        if run.duration_ms is not None and run.status != RunStatus.SKIPPED
    ]
    return duration_words(median(durations)) if durations else "—"
