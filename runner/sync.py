"""Job definition files in the original runner's format, applied by ``sync_jobs``.

A directory or file other users can change (writable by them, or theirs) is refused:
whoever edits a job file runs commands as the runner's user.

Each ``*.json`` file in a directory holds a list of jobs, or an object
``{"jobs": [...], "queues": [...]}``. A job is the unit: a refused job is skipped
with its reason and nothing of it is written, while the other jobs of its file
are applied. A file that cannot be read as one of those two shapes is refused
whole. ``atomic`` makes any refusal roll back the entire sync.

A file is declarative, as the original's sync is (svc/cli/jeeves-runner/sync-jobs.ts
overwrites every column): each job field comes from the file, and a key left out
takes its default. A list file is the original's own shape, so its jobs get the
original's interpreter rule (``interpreter: "node"``) unless they say otherwise.
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

from jeeves_site.echo import shortened, shown_path
from jeeves_site.file_trust import others_can_change
from jeeves_site.small_files import MIB, read_small_file
from queues.definitions import sync_queue_definition
from runner.jobs import JOB_FIELDS, defaults, upsert_job
from runner.models import Job
from runner.original_rules import as_original, original_entry
from runner.recurrence_text import RecurrenceError, canonical_text
from runner.validation import MAX_TIMEOUT_MS, describe
from statestore.values import HugeInteger, json_loads

# The original's text fields may be null; here they are empty strings.
_NULLABLE_TEXT = {
    "description", "on_failure", "on_success", "output_channel", "timezone", "interpreter",
    "webhook_url",
}  # fmt: skip
_NULL_MEANS = {"env": {}, "args": []}
_FILE_KEYS = {"jobs", "queues"}
# Keys of the original's JobDefinition that it parses and does not store.
ORIGINAL_UNSTORED_KEYS = {"domain", "prerequisite"}
REQUIRED_KEYS = ("id", "name", "schedule", "script")
# A job file bigger than this is refused (the README says so): 16 MiB is ~30,000 jobs.
MAX_JOB_FILE_BYTES = 16 * MIB

# Whoever can change a job file runs commands as the runner's user: such files are refused.
_FIX = "other users could make it run anything; run chmod go-w (or chown) on it"

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
    unstored: dict[str, set[str]] = field(default_factory=dict)  # key -> files naming it

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
    try:
        is_directory = directory.is_dir()
        files = sorted(directory.glob("*.json")) if is_directory else []
    except OSError as exc:  # a name too long, or a directory this user cannot list
        raise SyncError(f"{shown_path(directory)}: cannot read: {exc.strerror}") from None
    if not is_directory:
        raise SyncError(f"{shown_path(directory)}: not a directory")
    if not files:
        raise SyncError(f"{shown_path(directory)}: no *.json files")
    changeable = others_can_change(directory)
    if changeable:
        raise SyncError(f"{shown_path(directory)}: refused: {changeable}; {_FIX}")
    report = SyncReport()
    script_base = directory.resolve().parent
    with transaction.atomic():
        seen: dict[str, str] = {}
        for path in files:
            report.entries.extend(_sync_file(path, script_base, seen, report.unstored))
        report.entries.extend(_unstored_entries(report.unstored))
        if dry_run or (atomic and report.has_problems):
            transaction.set_rollback(True)
            report.written = False
    return report


def _sync_file(
    path: Path, script_base: Path, seen: dict[str, str], unstored: dict[str, set[str]]
) -> Iterator[Entry]:
    try:
        changeable = others_can_change(path)
        if changeable:
            raise FileRefused(f"{changeable}; {_FIX}")
        jobs, queues, original = load_file(path)
    except FileRefused as exc:
        yield Entry(path.name, "", REFUSED, str(exc))
        return
    for index, queue in enumerate(queues):
        yield _sync_queue(path.name, index, queue)
    for index, entry in enumerate(jobs):
        if isinstance(entry, Mapping):
            for key in set(entry) - set(JOB_FIELDS) - {"timeout_seconds"}:
                unstored.setdefault(key, set()).add(path.name)
        yield _sync_job(path.name, index, entry, script_base, seen, original)


def _unstored_entries(unstored: dict[str, set[str]]) -> list[Entry]:
    """One line for the original's unstored keys, one for other unknown keys, whole sync."""
    entries = []
    for keys, what in (
        (
            sorted(set(unstored) & ORIGINAL_UNSTORED_KEYS),
            "accepted and not stored, as by the original runner",
        ),
        (sorted(set(unstored) - ORIGINAL_UNSTORED_KEYS), "not job fields"),
    ):  # fmt: skip
        if keys:
            files = sorted(set().union(*(unstored[key] for key in keys)))
            entries.append(Entry(", ".join(files), "", IGNORED, f"{what}: {', '.join(keys)}"))
    return entries


def load_file(path: Path) -> tuple[list, list, bool]:
    """The job and queue lists a file holds, and whether it is the original's bare list.

    FileRefused when it holds neither shape.
    """
    try:
        data = json_loads(read_small_file(path, MAX_JOB_FILE_BYTES).decode("utf-8"))
    except UnicodeDecodeError:
        raise FileRefused("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise FileRefused(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise FileRefused("not valid JSON: nested too deeply") from None
    except OSError as exc:
        raise FileRefused(f"cannot be read: {exc.strerror}") from None
    except ValueError as exc:  # NaN or Infinity
        raise FileRefused(f"not valid JSON: {exc}") from None
    if isinstance(data, list):
        return data, [], True
    if isinstance(data, dict) and set(data) <= _FILE_KEYS:
        jobs, queues = data.get("jobs", []), data.get("queues", [])
        if isinstance(jobs, list) and isinstance(queues, list):
            return jobs, queues, False
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
    file: str, index: int, data: Any, script_base: Path, seen: dict[str, str], original: bool
) -> Entry:
    subject = _subject("job", data, index)
    job_id = data.get("id") if isinstance(data, Mapping) else None
    if isinstance(job_id, str) and job_id in seen:
        return Entry(file, subject, SKIPPED, f"id already defined in {seen[job_id]}")
    try:
        fields, notes = declared_fields(data, original)
        job, change = upsert_job(fields, script_base)
    except ValidationError as exc:
        return Entry(file, subject, SKIPPED, describe(exc, Job))
    seen[job_id] = file
    return Entry(file, subject, str(change), "; ".join([*notes, *job.warnings()]))


def declared_fields(entry: Any, original: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Every field of a job from one file entry: what it says, else the default; and
    notes on what was read differently.

    ``original``: the entry is in the original's own shape (a list file's), read with
    its meaning (``runner.original_rules``).
    """
    notes: list[str] = []
    if original and isinstance(entry, Mapping):
        entry, notes = original_entry(entry)
    fields = job_fields(entry)
    missing = {key: "is required in a job file" for key in REQUIRED_KEYS if key not in entry}
    if missing:
        raise ValidationError(missing)
    if original:
        fields, more = as_original(fields)
        notes += more
    return {**defaults(), **fields}, notes


def _subject(kind: str, data: Any, index: int) -> str:
    item_id = data.get("id") if isinstance(data, Mapping) else None
    if isinstance(item_id, str) and item_id:
        return f"{kind} {shortened(item_id)}"
    return f"{kind} #{index + 1}"


def job_fields(entry: Any) -> dict[str, Any]:
    """Translate one job of the original's format into ``upsert_job`` fields.

    ``timeout_seconds`` becomes ``timeout_ms``; null text means empty; a recurrence
    object schedule becomes its JSON text; keys that are not job fields (the
    original's ``domain``, ``prerequisite``) are left out.
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
        try:
            fields["schedule"] = canonical_text(fields["schedule"])
        except RecurrenceError as exc:  # it holds what no schedule can (a huge integer)
            raise ValidationError({"schedule": str(exc)}) from None
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
    if isinstance(seconds, HugeInteger):
        raise ValidationError(
            {"timeout_seconds": f"must be at most {MAX_TIMEOUT_MS // 1000} seconds (a year)"}
        )
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or (isinstance(seconds, float) and not math.isfinite(seconds))  # an int may be too big
        or not seconds > 0
    ):
        raise ValidationError(
            {"timeout_seconds": "must be a positive number of seconds, or null for no timeout"}
        )
    if seconds * 1000 > MAX_TIMEOUT_MS:
        raise ValidationError(
            {"timeout_seconds": f"must be at most {MAX_TIMEOUT_MS // 1000} seconds (a year)"}
        )
    if seconds < 0.001:  # a timeout is kept in whole milliseconds
        raise ValidationError({"timeout_seconds": "must be at least 0.001 seconds (1 ms)"})
    return round(seconds * 1000)
