"""The base class of the runner's own short commands (add_job, list_jobs, ...).

They run Django's system checks as every command does (so a bad configuration or the
original runner's database still stops them), except ``runner.W020``, which lists every
job whose script file is missing: before each command's own output it buried the one
line that command has to say, and the commands that touch a job warn about its script
themselves. ``manage.py check``, ``migrate``, ``runscheduler`` and ``runworkers`` keep it.

A database without the runner's tables (not migrated yet, or the command was run
without the scheduler's ``JEEVES_DATA_DIR``/``DATABASE_URL`` and so opened another one)
is one line saying so, not a traceback ending in ``no such table: jobs``. What they
print, refusals included, shows control characters as ``\\xNN`` (``runner.terminal``).

Every project command, ``runscheduler`` and ``runworkers`` included, is at least a
``ProjectCommand``: an argument that is not valid text (a byte that is not UTF-8) is one
line naming the option, not a traceback (``runner.management.arguments``).
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection

from runner.checks import missing_scripts_check_skipped
from runner.management.arguments import refuse_undecodable
from runner.terminal import neutralise


class ProjectCommand(BaseCommand):
    """A ``BaseCommand`` that refuses an argument holding a lone surrogate (CommandError)
    before its checks and its ``handle`` run."""

    # Options (dests) that name a file: their bytes go to the system as they are.
    path_options: tuple[str, ...] = ()

    def execute(self, *args: Any, **options: Any) -> Any:
        parser = self.create_parser("manage.py", self._command_name())
        refuse_undecodable(parser, {**options, "args": args}, exempt=self.path_options)
        return super().execute(*args, **options)

    def _command_name(self) -> str:
        return self.__class__.__module__.rpartition(".")[2]


class RunnerCommand(ProjectCommand):
    """A ``ProjectCommand`` whose system checks leave out ``runner.W020``."""

    def check(self, *args: Any, **kwargs: Any) -> None:
        with missing_scripts_check_skipped():
            super().check(*args, **kwargs)

    def execute(self, *args: Any, **options: Any) -> Any:
        # Ids, names and values an operator typed or a file held are echoed: a control
        # character among them is shown as \xNN, not obeyed by the terminal.
        options["stdout"] = _Neutralised(options.get("stdout") or sys.stdout)
        options["stderr"] = _Neutralised(options.get("stderr") or sys.stderr)
        try:
            result = self._execute(*args, **options)
            sys.stdout.flush()  # here, where a reader gone is caught, not at exit
            return result
        except CommandError as exc:
            raise CommandError(neutralise(str(exc)), returncode=exc.returncode) from None
        except BrokenPipeError:
            _reader_gone()

    def _execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except DatabaseError:
            if _has_runner_tables():
                raise
            raise CommandError(
                f"the database {_database_name()} has no runner tables: run manage.py "
                "migrate, or give this command the runner's JEEVES_DATA_DIR or DATABASE_URL"
            ) from None


class _Neutralised:
    """A stream whose text is written with control characters shown (``neutralise``)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(neutralise(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


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


def _reader_gone() -> None:
    """Stop quietly, as other tools do, when the reader of the output went away
    (``list_jobs | head``): no traceback, and nothing more written to the closed pipe
    (Python's advice: point stdout at /dev/null for the exit's flush)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(1)
