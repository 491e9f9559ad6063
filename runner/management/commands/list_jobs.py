"""``list_jobs``: every job with its next fire and last run status."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from runner.jobs import JobRow, job_rows
from runner.management.base import RunnerCommand
from runner.schedule import zone
from runner.terminal import neutralise

SCHEDULE_WIDTH = 60  # a longer schedule is cut: one row per line on a terminal
HEADERS = ("ENABLED", "ID", "SCHEDULE", "NEXT FIRE", "LAST STATUS", "NAME")


class Command(RunnerCommand):
    help = (
        "List jobs: enabled, id, schedule with its time zone, next fire (in that zone; "
        "'-' when disabled), status of the newest run that is not pending, name."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        rows = [_cells(row) for row in job_rows(timezone.now())]
        if not rows:
            self.stdout.write("No jobs.")
            return
        widths = [max(len(cells[i]) for cells in [HEADERS, *rows]) for i in range(5)]
        for cells in [HEADERS, *rows]:
            padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
            self.stdout.write("  ".join([*padded, cells[5]]))


def _cells(row: JobRow) -> tuple[str, ...]:
    return (
        "yes" if row.enabled else "no",
        row.id,
        f"{_shortened(row.schedule)} ({row.zone})",
        _next_fire(row),
        row.last_status or "-",
        neutralise(row.name),  # typed by whoever edits jobs; printed on a terminal
    )


def _shortened(schedule: str, width: int = SCHEDULE_WIDTH) -> str:
    """A long schedule (a recurrence object, a long list) cut to ``width`` characters."""
    return schedule if len(schedule) <= width else schedule[: width - 1] + "…"


def _next_fire(row: JobRow) -> str:
    if not row.enabled:
        return "-"
    if row.next_fire is None:
        return "never"
    return row.next_fire.astimezone(zone(row.zone)).strftime("%Y-%m-%d %H:%M:%S %Z")
