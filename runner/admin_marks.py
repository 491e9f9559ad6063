"""HTML marks the console's lists share: status badges, the strip of last runs, times.

Each returns safe HTML built with ``format_html``; the CSS is runner/static/runner/console.css.
"""

from __future__ import annotations

from datetime import datetime
from statistics import median
from zoneinfo import ZoneInfo

from django.urls import reverse
from django.utils.html import format_html, format_html_join

from runner.describe import duration_words, relative_words
from runner.models import Run, RunStatus

# How many runs the job list's strip shows, newest last.
STRIP_RUNS = 20


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


def run_strip(runs: list[Run]):
    """One coloured mark per run, oldest first, each linking to its run."""
    marks = format_html_join(
        "",
        '<a class="jr-badge jr-{}" href="{}" title="#{} {} {}"></a>',
        (
            (
                run.status,
                reverse("admin:runner_run_change", args=[run.pk]),
                run.pk,
                run.status,
                run.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
            for run in reversed(runs)
        ),
    )
    return format_html('<span class="jr-strip">{}</span>', marks) if runs else "—"


def median_duration(runs: list[Run]) -> str:
    """The median duration of the runs that ran to an end, in words."""
    durations = [
        run.duration_ms
        for run in runs
        if run.duration_ms is not None and run.status != RunStatus.SKIPPED
    ]
    return duration_words(median(durations)) if durations else "—"
