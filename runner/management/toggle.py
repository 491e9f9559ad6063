"""The shared body of ``enable_job`` and ``disable_job``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from runner.jobs import UnknownJobs, get_jobs, set_enabled
from runner.management.base import RunnerCommand


class ToggleCommand(RunnerCommand):
    """Set ``enabled`` on the named jobs; refuses them all if one is unknown."""

    enabled: bool

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job_ids", nargs="+", metavar="ID")

    def handle(self, *args: Any, job_ids: list[str], **options: Any) -> None:
        try:
            jobs = get_jobs(job_ids)
        except UnknownJobs as exc:
            raise CommandError(f"{exc}; nothing changed") from None
        set_enabled([job.pk for job in jobs], self.enabled)
        word = "enabled" if self.enabled else "disabled"
        for job in jobs:
            already = "already " if job.enabled == self.enabled else ""
            self.stdout.write(f"job {job.id}: {already}{word}")
