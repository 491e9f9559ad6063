"""``import_original_db PATH``: bring an original jeeves-runner ``runner.sqlite`` into ours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from jeeves_site.echo import shown_path
from runner.management.base import RunnerCommand
from runner.original_db import NotAnOriginalDatabase
from runner.original_import import (
    IMPORTED,
    NOT_IMPORTED,
    PRESENT,
    SKIPPED,
    TABLES,
    import_original_db,
)


class Command(RunnerCommand):
    path_options = ("path",)  # a file's name may hold any bytes
    help = (
        "Import the jobs, runs, state, state items, queue definitions and queue items of an "
        "original jeeves-runner database (its runner.sqlite, opened read-only) into this "
        "runner's database. Rows already here are kept as they are, so running it again "
        "changes nothing. Prints counts per table and each row it could not import; exits "
        "non-zero if there was any."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", metavar="PATH", help="the original's runner.sqlite")
        parser.add_argument(
            "--dry-run", action="store_true", help="report what would be imported, write nothing"
        )

    def handle(self, *args: Any, path: str, dry_run: bool, **options: Any) -> None:
        try:
            report = import_original_db(Path(path), dry_run=dry_run)
        except NotAnOriginalDatabase as exc:
            raise CommandError(str(exc)) from None
        verb = "would be imported" if dry_run else "imported"
        self.stdout.write(f"{shown_path(path)} (original schema version {report.schema_version}):")
        for table in TABLES:
            counts = report.counts[table]
            skipped = f", {counts[SKIPPED]} skipped" if counts[SKIPPED] else ""
            self.stdout.write(
                f"  {table:<12} {counts[IMPORTED]} {verb}, {counts[PRESENT]} already present"
                f"{skipped}, {counts[NOT_IMPORTED]} not imported"
            )
        for line in report.notes:
            self.stdout.write(f"  note: {line}")
        for line in report.refused:
            self.stderr.write(f"  not imported: {line}")
        if dry_run:
            self.stdout.write("Dry run: nothing was written.")
        if report.refused:
            raise CommandError(f"{len(report.refused)} row(s) could not be imported (listed above)")
