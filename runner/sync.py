"""Job definition files in the original runner's format, applied by ``sync_jobs``.

Each ``*.json`` file in a directory holds a list of jobs, or an object
``{"jobs": [...], "queues": [...]}``. A job is the unit: a refused job is skipped
with its reason and nothing of it is written, while the other jobs of its file
are applied. A file that cannot be read as one of those two shapes is refused
whole. ``atomic`` makes any refusal roll back the entire sync.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from queues.definitions import sync_queue_definition
from runner.jobs import JOB_FIELDS, upsert_job
from runner.models import Job
from runner.validation import describe

# The original's text fields may be null; here they are empty strings.
_NULLABLE_TEXT = {"description", "on_failure", "on_success", "output_channel", "timezone"}
_NULL_MEANS = {"env": {}, "args": []}
_FILE_KEYS = {"jobs", "queues"}

SKIPPED = "skipped"
REFUSED = "refused"
IGNORED = "ignored"


class SyncError(Exception):
    """The directory itself cannot be synced (missing, or holding no job files)."""


class FileRefused(Exception):
    """A file is not a job file; the message says why."""


@dataclass(frozen=True)
class Entry:
    """What happened to one job, queue or file."""

    file: str
    subject: str  # "job ID", "queue ID", or "" for the file itself
    action: str  # added, updated, unchanged, skipped, refused or ignored
    reason: str = ""

    @property
    def is_problem(self) -> bool:
        return self.action in (SKIPPED, REFUSED)


@dataclass
class SyncReport:
    """Every entry of a sync, in file order, and whether anything was kept."""

    entries: list[Entry] = field(default_factory=list)
    written: bool = True

    @property
    def has_problems(self) -> bool:
        return any(entry.is_problem for entry in self.entries)

    def count(self, action: str) -> int:
        """How many entries ended with ``action``."""
        return sum(entry.action == action for entry in self.entries)


def sync_directory(directory: Path, *, dry_run: bool = False, atomic: bool = False) -> SyncReport:
    """Upsert every job (and queue) defined in ``directory/*.json``.

    Path scripts resolve relative to the directory's parent. With ``dry_run``
    everything is checked and nothing kept; with ``atomic`` nothing is kept
    unless every file and job is accepted.
    """
    if not directory.is_dir():
        raise SyncError(f"{directory}: not a directory")
    files = sorted(directory.glob("*.json"))
    if not files:
        raise SyncError(f"{directory}: no *.json files")
    report = SyncReport()
    script_base = directory.resolve().parent
    with transaction.atomic():
        seen: dict[str, str] = {}
        for path in files:
            report.entries.extend(_sync_file(path, script_base, seen))
        if dry_run or (atomic and report.has_problems):
            transaction.set_rollback(True)
            report.written = False
    return report


def _sync_file(path: Path, script_base: Path, seen: dict[str, str]) -> Iterator[Entry]:
    try:
        jobs, queues = load_file(path)
    except FileRefused as exc:
        yield Entry(path.name, "", REFUSED, str(exc))
        return
    for index, queue in enumerate(queues):
        yield _sync_queue(path.name, index, queue)
    ignored: set[str] = set()
    for index, entry in enumerate(jobs):
        yield _sync_job(path.name, index, entry, script_base, seen, ignored)
    if ignored:
        yield Entry(
            path.name, "", IGNORED, f"keys that are not job fields: {', '.join(sorted(ignored))}"
        )


def load_file(path: Path) -> tuple[list, list]:
    """The job and queue lists a file holds; FileRefused when it holds neither shape."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise FileRefused("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise FileRefused(f"not valid JSON: {exc}") from None
    except OSError as exc:
        raise FileRefused(f"cannot be read: {exc.strerror}") from None
    if isinstance(data, list):
        return data, []
    if isinstance(data, dict) and set(data) <= _FILE_KEYS:
        jobs, queues = data.get("jobs", []), data.get("queues", [])
        if isinstance(jobs, list) and isinstance(queues, list):
            return jobs, queues
    raise FileRefused(
        'must hold a JSON list of jobs, or an object {"jobs": [...], "queues": [...]}'
    )


def _sync_queue(file: str, index: int, data: Any) -> Entry:
    subject = _subject("queue", data, index)
    try:
        with transaction.atomic():
            _, change = sync_queue_definition(data)
    except ValidationError as exc:
        return Entry(file, subject, SKIPPED, describe(exc))
    return Entry(file, subject, change)


def _sync_job(
    file: str, index: int, data: Any, script_base: Path, seen: dict[str, str], ignored: set[str]
) -> Entry:
    subject = _subject("job", data, index)
    job_id = data.get("id") if isinstance(data, Mapping) else None
    if isinstance(job_id, str) and job_id in seen:
        return Entry(file, subject, SKIPPED, f"id already defined in {seen[job_id]}")
    if isinstance(data, Mapping):
        ignored.update(set(data) - set(JOB_FIELDS) - {"timeout_seconds"})
    try:
        _, change = upsert_job(job_fields(data), script_base)
    except ValidationError as exc:
        return Entry(file, subject, SKIPPED, describe(exc, Job))
    seen[job_id] = file
    return Entry(file, subject, str(change))


def _subject(kind: str, data: Any, index: int) -> str:
    item_id = data.get("id") if isinstance(data, Mapping) else None
    return f"{kind} {item_id}" if isinstance(item_id, str) and item_id else f"{kind} #{index + 1}"


def job_fields(entry: Any) -> dict[str, Any]:
    """Translate one job of the original's format into ``upsert_job`` fields.

    ``timeout_seconds`` becomes ``timeout_ms``; null text means empty; keys that
    are not job fields (the original's ``domain``, ``prerequisite``) are left out.
    """
    if not isinstance(entry, Mapping):
        raise ValidationError("a job must be a JSON object")
    fields = {key: _null_as_empty(key, value) for key, value in entry.items() if key in JOB_FIELDS}
    if "timeout_seconds" in entry:
        if "timeout_ms" in entry:
            raise ValidationError(
                {"timeout_seconds": "give timeout_seconds or timeout_ms, not both"}
            )
        fields["timeout_ms"] = _timeout_ms(entry["timeout_seconds"])
    if isinstance(fields.get("schedule"), Mapping):
        raise ValidationError({"schedule": _object_schedule_reason(fields["schedule"])})
    return fields


def _null_as_empty(key: str, value: Any) -> Any:
    if value is None and key in _NULLABLE_TEXT:
        return ""
    if value is None and key in _NULL_MEANS:
        return _NULL_MEANS[key]
    return value


def _timeout_ms(seconds: Any) -> int | None:
    if seconds is None:
        return None
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not (math.isfinite(seconds) and seconds > 0)
    ):
        raise ValidationError(
            {"timeout_seconds": "must be a positive number of seconds, or null for no timeout"}
        )
    return max(1, round(seconds * 1000))


def _object_schedule_reason(schedule: Mapping) -> str:
    given = json.dumps(schedule, separators=(", ", ": "))
    return (
        f"{given} is the original runner's recurrence object, which is not supported; "
        "give a cron expression such as '*/5 * * * *'"
    )
