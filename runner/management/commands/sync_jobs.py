"""``sync_jobs DIR``: upsert the jobs defined in DIR/*.json (the original runner's format)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runner.sync import IGNORED, REFUSED, SKIPPED, Entry, SyncError, sync_directory
from statestore.values import replace_surrogates

ACTIONS = ("added", "updated", "unchanged", SKIPPED)


class Command(BaseCommand):
    help = (
        "Add or update every job in DIR/*.json. A file holds a list of jobs, or "
        '{"jobs": [...], "queues": [...]}; path scripts resolve relative to DIR\'s parent. '
        "A refused job is skipped with its reason while the file's other jobs are applied; "
        "a malformed file is refused whole. Exits non-zero if anything was skipped or refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", metavar="DIR")
        parser.add_argument(
            "--dry-run", action="store_true", help="check and report, write nothing"
        )
        parser.add_argument(
            "--atomic",
            action="store_true",
            help="write nothing unless every file and job is accepted",
        )

    def handle(self, *args: Any, directory: str, **options: Any) -> None:
        try:
            report = sync_directory(
                Path(directory), dry_run=options["dry_run"], atomic=options["atomic"]
            )
        except SyncError as exc:
            raise CommandError(str(exc)) from None
        for entry in report.entries:
            out = self.stderr if entry.is_problem else self.stdout
            out.write(_line(entry))
        refused = report.count(REFUSED)
        counts = [f"{report.count(action)} {action}" for action in ACTIONS]
        summary = ", ".join([*counts, f"{refused} file{'' if refused == 1 else 's'} refused"])
        self.stdout.write(summary + ("" if report.written else "; nothing written"))
        if report.has_problems:
            raise CommandError(
                f"{report.count(SKIPPED)} skipped, {refused} refused; see the lines above"
            )


def _line(entry: Entry) -> str:
    if entry.action in (REFUSED, IGNORED):
        return replace_surrogates(f"{entry.file}: {entry.action}: {entry.reason}")
    reason = f": {entry.reason}" if entry.reason else ""
    # An id may hold a lone surrogate (invalid UTF-8 in the file is refused, but a
    # "\udcff" escape is not), which stdout cannot encode.
    return replace_surrogates(f"{entry.file}: {entry.subject}: {entry.action}{reason}")
