"""``remove_job ID...``: delete jobs and their whole run history."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from runner.jobs import UnknownJobs, remove_jobs
from runner.management.base import RunnerCommand


class Command(RunnerCommand):
    help = (
        "Delete jobs with all their runs. A run still in progress is ended at its "
        "next heartbeat. Refuses them all if one id is unknown."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job_ids", nargs="+", metavar="ID")

    def handle(self, *args: Any, job_ids: list[str], **options: Any) -> None:
        try:
            removed = remove_jobs(job_ids, require_all=True)
        except UnknownJobs as exc:
            raise CommandError(f"{exc}; nothing removed") from None
        for job_id, runs in removed.items():
            self.stdout.write(f"job {job_id}: removed with {runs} run{'' if runs == 1 else 's'}")
