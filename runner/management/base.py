"""The base class of the runner's own short commands (add_job, list_jobs, ...).

They run Django's system checks as every command does (so a bad configuration or the
original runner's database still stops them), except ``runner.W020``, which lists every
job whose script file is missing: before each command's own output it buried the one
line that command has to say, and the commands that touch a job warn about its script
themselves. ``manage.py check``, ``migrate``, ``runscheduler`` and ``runworkers`` keep it.

A database without the runner's tables (not migrated yet, or the command was run
without the scheduler's ``JEEVES_DATA_DIR``/``DATABASE_URL`` and so opened another one)
is one line saying so, not a traceback ending in ``no such table: jobs``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection

from runner.checks import missing_scripts_check_skipped


class RunnerCommand(BaseCommand):
    """A ``BaseCommand`` whose system checks leave out ``runner.W020``."""

    def check(self, *args: Any, **kwargs: Any) -> None:
        with missing_scripts_check_skipped():
            super().check(*args, **kwargs)

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except DatabaseError:
            if _has_runner_tables():
                raise
            raise CommandError(
                f"the database {_database_name()} has no runner tables: run manage.py "
                "migrate, or give this command the runner's JEEVES_DATA_DIR or DATABASE_URL"
            ) from None


def _has_runner_tables() -> bool:
    try:
        return "jobs" in connection.introspection.table_names()
    except DatabaseError:
        return True  # cannot tell: let the original error speak


def _database_name() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return str(settings["NAME"])
    return f"{settings.get('NAME')} on {settings.get('HOST') or 'localhost'}"
