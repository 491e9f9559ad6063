"""``sync_jobs [DIR]``: make the jobs defined in DIR/*.json (the original runner's format)
as the files say; DIR defaults to the config's ``jobsDir``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from jeeves_site.paths import expand_user
from runner.management.base import RunnerCommand
from runner.sync import IGNORED, REFUSED, SKIPPED, Entry, SyncError, sync_directory
from statestore.values import replace_surrogates

WRITTEN = ("added", "updated", "unchanged")
ACTIONS = (*WRITTEN, SKIPPED)


class Command(RunnerCommand):
    path_options = ("directory",)  # a directory's name may hold any bytes
    help = (
        "Add or update every job in DIR/*.json. A file holds a list of jobs, or "
        '{"jobs": [...], "queues": [...]}; path scripts resolve relative to DIR\'s parent. '
        "A refused job is skipped with its reason while the file's other jobs are applied; "
        "a malformed file is refused whole. Exits non-zero if anything was skipped or refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", metavar="DIR", nargs="?")
        parser.add_argument(
            "--dry-run", action="store_true", help="check and report, write nothing"
        )
        parser.add_argument(
            "--atomic",
            action="store_true",
            help="write nothing unless every file and job is accepted",
        )

    def handle(self, *args: Any, directory: str | None, **options: Any) -> None:
        try:
            report = sync_directory(
                Path(directory) if directory else configured_jobs_dir(),
                dry_run=options["dry_run"],
                atomic=options["atomic"],
            )
        except SyncError as exc:
            raise CommandError(str(exc)) from None
        for entry in report.entries:
            warned = entry.action in WRITTEN and entry.reason
            out = self.stderr if entry.is_problem or warned else self.stdout
            out.write(_line(entry))
        refused = report.count(REFUSED)
        counts = [f"{report.count(action)} {action}" for action in ACTIONS]
        summary = ", ".join([*counts, f"{refused} file{'' if refused == 1 else 's'} refused"])
        self.stdout.write(summary + ("" if report.written else "; nothing written"))
        if report.has_problems:
            raise CommandError(
                f"{report.count(SKIPPED)} skipped, {refused} refused; see the lines above"
            )


def configured_jobs_dir() -> Path:
    """``jobsDir`` from the config; else ``scripts/jobs`` beside the config file, as the
    original's sync-jobs falls back to. CommandError when neither is known."""
    jobs_dir = getattr(settings.RUNNER, "jobs_dir", "") or ""
    if jobs_dir:
        return expand_user(jobs_dir)
    config_file = getattr(settings.RUNNER, "config_file", "") or ""
    if config_file:
        return Path(config_file).resolve().parent / "scripts" / "jobs"
    raise CommandError(
        "give DIR, or set jobsDir in the config file (JEEVES_CONFIG) or JEEVES_JOBS_DIR"
    )


def _line(entry: Entry) -> str:
    if entry.action in (REFUSED, IGNORED):
        return replace_surrogates(f"{entry.file}: {entry.action}: {entry.reason}")
    if entry.action in WRITTEN and entry.reason:  # accepted with a warning
        return replace_surrogates(
            f"{entry.file}: {entry.subject}: {entry.action}; warning: {entry.reason}"
        )
    reason = f": {entry.reason}" if entry.reason else ""
    # An id may hold a lone surrogate (invalid UTF-8 in the file is refused, but a
    # "\udcff" escape is not), which stdout cannot encode.
    return replace_surrogates(f"{entry.file}: {entry.subject}: {entry.action}{reason}")
