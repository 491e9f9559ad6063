"""The base class of the runner's own short commands (add_job, list_jobs, ...).

They run Django's system checks as every command does (so a bad configuration or the
original runner's database still stops them), except ``runner.W020``, which lists every
job whose script file is missing: before each command's own output it buried the one
line that command has to say, and the commands that touch a job warn about its script
themselves. ``manage.py check``, ``migrate``, ``runscheduler`` and ``runworkers`` keep it.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from runner.checks import missing_scripts_check_skipped


class RunnerCommand(BaseCommand):
    """A ``BaseCommand`` whose system checks leave out ``runner.W020``."""

    def check(self, *args: Any, **kwargs: Any) -> None:
        with missing_scripts_check_skipped():
            super().check(*args, **kwargs)
