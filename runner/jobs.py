"""Creating, changing, listing and removing jobs: what every entrance shares.

``add_job``, ``sync_jobs``, the admin actions and the HTTP API call these
functions, so a job is always written through ``Job.full_clean()`` and refused
with the same words wherever it comes from.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Count, OuterRef, Subquery
from django.utils import timezone

from jeeves_site.echo import shortened
from jeeves_site.paths import expand_user
from runner.models import Job, Run, RunStatus, SourceType
from runner.recurrence_text import canonical_text
from runner.schedule import zone_name_of
from statestore.values import json_problem

# Every field a caller may set; the rest (created_at, updated_at) are the database's.
JOB_FIELDS = (
    "id", "name", "description", "type", "schedule", "timezone", "script", "source_type",
    "interpreter", "enabled", "timeout_ms", "overlap_policy", "missed_fire_policy", "thinking",
    "on_failure", "on_success", "output_channel", "env", "args",
    "alert_after_failures", "alert_reminder_hours", "late_grace_s", "slow_factor", "retries",
    "retry_backoff_s", "webhook_url",
)  # fmt: skip
REQUIRED_FOR_NEW = ("id", "name", "schedule", "script")
# Whole numbers (issue 16's alert and retry settings); None only where the field allows it.
_WHOLE_NUMBERS = {
    "alert_after_failures": False, "alert_reminder_hours": False, "late_grace_s": True,
    "retries": False, "retry_backoff_s": False,
}  # fmt: skip
_NOT_STRINGS = {"enabled", "timeout_ms", "env", "args", "slow_factor", *_WHOLE_NUMBERS}


class Change(models.TextChoices):
    """What an upsert did to the job."""

    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class UnknownJobs(LookupError):
    """Some of the job ids asked for do not exist; ``ids`` lists them.

    The message names the first ``NAMED_IDS``, each on one line and cut (``shortened``).
    """

    NAMED_IDS = 10

    def __init__(self, ids: list[str]) -> None:
        named = ", ".join(shortened(job_id) for job_id in ids[: self.NAMED_IDS])
        more = f" and {len(ids) - self.NAMED_IDS} more" if len(ids) > self.NAMED_IDS else ""
        super().__init__(f"unknown job id{'s' if len(ids) > 1 else ''}: {named}{more}")
        self.ids = ids


def upsert_job(fields: Mapping[str, Any], script_base: Path | None = None) -> tuple[Job, Change]:
    """Create job ``fields["id"]``, or change only the fields given; return it and what changed.

    A new job needs id, name, schedule and script; other fields take the model's
    defaults. With ``script_base``, a relative path script (a path job's file or a
    session's prompt file) resolves against it and is stored absolute. Raises
    ValidationError naming each bad field (see ``validation.describe``); nothing is
    written then. A ``schedule`` may be a recurrence object (a mapping), stored as
    its JSON text.
    """
    if isinstance(fields, Mapping) and isinstance(fields.get("schedule"), Mapping):
        fields = {**fields, "schedule": canonical_text(fields["schedule"])}
    _check_shape(fields)
    try:
        return _upsert(fields, script_base)
    except IntegrityError:
        # Another process created the same id between our read and insert.
        return _upsert(fields, script_base)


def _check_shape(fields: Mapping[str, Any]) -> None:
    if not isinstance(fields, Mapping):
        raise ValidationError("a job must be a JSON object")
    errors = {name: "unknown field" for name in fields if name not in JOB_FIELDS}
    for name, value in fields.items():
        # Storability first: the id is looked up before full_clean, and neither driver
        # can send a lone surrogate (PostgreSQL not a NUL either).
        problem = json_problem(value) or _type_problem(name, value)
        if name in JOB_FIELDS and problem:
            errors[name] = problem
    if not errors and not fields.get("id"):
        errors["id"] = "is required"
    if errors:
        raise ValidationError(errors)


def _type_problem(name: str, value: object) -> str | None:
    """What is wrong with the JSON type of ``value`` (the model would coerce it silently)."""
    if name == "enabled" and not isinstance(value, bool):
        return "must be true or false"
    whole = isinstance(value, int) and not isinstance(value, bool)
    if name == "timeout_ms" and value is not None and not whole:
        return "must be a whole number of milliseconds, or null for no timeout"
    if name in _WHOLE_NUMBERS and not whole and not (value is None and _WHOLE_NUMBERS[name]):
        return "must be a whole number" + (
            ", or null for the default" if _WHOLE_NUMBERS[name] else ""
        )
    if name == "slow_factor" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return "must be a number (0: no slow alerts)"
    if name not in _NOT_STRINGS and not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    return None


def _upsert(fields: Mapping[str, Any], script_base: Path | None) -> tuple[Job, Change]:
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=fields["id"]).first()
        created = job is None
        if created:
            _require_new_fields(fields)
            job = Job()
        before = _snapshot(job)
        for name, value in fields.items():
            setattr(job, name, value)
        if script_base is not None and "script" in fields:
            job.script = absolute_script(job, script_base)
        # The id's uniqueness is the INSERT's to check: checked here, a create committed
        # by another request since our read (PostgreSQL) was a bad "id" (400), not the
        # IntegrityError that upsert_job retries as an update.
        job.full_clean(validate_unique=False)
        if not created and _snapshot(job) == before:
            return job, Change.UNCHANGED
        job.save(force_insert=created)
    return job, Change.ADDED if created else Change.UPDATED


def defaults() -> dict[str, Any]:
    """Every settable field's default: what a declarative source leaves unsaid."""
    return {
        name: Job._meta.get_field(name).get_default()
        for name in JOB_FIELDS
        if name not in REQUIRED_FOR_NEW
    }


def _require_new_fields(fields: Mapping[str, Any]) -> None:
    missing = {
        name: "is required for a new job" for name in REQUIRED_FOR_NEW if not fields.get(name)
    }
    if missing:
        raise ValidationError(missing)


def _snapshot(job: Job) -> dict[str, Any]:
    return {name: getattr(job, name) for name in JOB_FIELDS}


def absolute_script(job: Job, base: Path) -> str:
    """The job's script with a relative file path made absolute against ``base``.

    Inline text and anything that is not one line (so not a path) stay as they are.
    """
    text = job.script.strip()
    if job.source_type != SourceType.PATH or not text or "\n" in text:
        return job.script
    path = expand_user(text)
    return os.path.normpath(path if path.is_absolute() else base / path)


def get_jobs(job_ids: Iterable[str]) -> list[Job]:
    """The jobs with these ids, in the order given; UnknownJobs if any is missing."""
    ids = list(dict.fromkeys(job_ids))
    found = Job.objects.in_bulk(ids)
    missing = [job_id for job_id in ids if job_id not in found]
    if missing:
        raise UnknownJobs(missing)
    return [found[job_id] for job_id in ids]


def set_enabled(job_ids: Iterable[str], enabled: bool) -> int:
    """Enable or disable these jobs; return how many changed.

    ``updated_at`` moves only for the jobs that changed, so the scheduler's
    reconciliation sees exactly those.
    """
    jobs = Job.objects.filter(pk__in=list(job_ids)).exclude(enabled=enabled)
    return jobs.update(enabled=enabled, updated_at=timezone.now())


def remove_jobs(job_ids: Iterable[str], require_all: bool = False) -> dict[str, int]:
    """Delete these jobs with all their runs; return each removed job's run count.

    Only the jobs this call deleted are returned: of concurrent removals of one job,
    one gets it. With ``require_all``, UnknownJobs and nothing removed if any is missing.
    A run still in progress loses its row; its worker's next heartbeat finds the
    run gone and ends the script.
    """
    ids = list(dict.fromkeys(job_ids))
    with transaction.atomic():
        # Locked first: a removal that waited for another one's commit finds the row gone
        # (PostgreSQL; SQLite's writers take turns anyway).
        locked = Job.objects.select_for_update().filter(pk__in=ids)
        removed = set(locked.values_list("pk", flat=True))
        missing = [job_id for job_id in ids if job_id not in removed]
        if require_all and missing:
            raise UnknownJobs(missing)
        counts = dict(
            Run.objects.filter(job__in=removed).values_list("job").annotate(n=Count("id"))
        )
        Job.objects.filter(pk__in=removed).delete()
    return {job_id: counts.get(job_id, 0) for job_id in ids if job_id in removed}


class JobRow(NamedTuple):
    """One line of the job list."""

    enabled: bool
    id: str
    schedule: str
    zone: str  # the schedule's zone: a recurrence object's own, the job's, or the server's
    next_fire: datetime | None
    last_status: str | None
    name: str


def newest_runs_not_pending() -> models.QuerySet:
    """The outer query's job's runs, newest first, but the pending ones: a job's "last
    status" (``Subquery``). The pending run is the next one waiting to start, and an
    every-second job always has one, dispatched ahead of its instant."""
    # The runs_job_newest index, walked past the pending run or two at its head.
    runs = Run.objects.filter(job=OuterRef("pk")).exclude(status=RunStatus.PENDING)
    return runs.order_by("-id")


def job_rows(now: datetime) -> list[JobRow]:
    """Every job with its next fire after ``now`` (None when disabled) and the status of
    its newest run that is not pending (``newest_runs_not_pending``).

    One query whatever the number of jobs; next fires are computed once per
    distinct (schedule, zone).
    """
    last_status = newest_runs_not_pending().values("status")[:1]
    rows = Job.objects.annotate(last_status=Subquery(last_status)).values_list(
        "enabled", "id", "schedule", "timezone", "last_status", "name"
    )
    next_fires: dict[tuple[str, str], datetime | None] = {}
    result = []
    for enabled, job_id, schedule, zone_name, status, name in rows.iterator(chunk_size=2000):
        job = Job(schedule=schedule, timezone=zone_name)
        key = (schedule, job.zone_name)
        if enabled and key not in next_fires:
            next_fires[key] = _next_fire(job, now)
        next_fire = next_fires[key] if enabled else None
        zone = shown_zone(job)
        result.append(JobRow(enabled, job_id, schedule, zone, next_fire, status, name))
    return result


def shown_zone(job: Job) -> str:
    """The zone a job's fires are shown in: a recurrence object's own ``timezone``, else
    the job's, else the server's."""
    try:
        return zone_name_of(job.schedule, job.zone_name)
    except ValueError:
        return job.zone_name


def _next_fire(job: Job, now: datetime) -> datetime | None:
    try:
        return job.next_fire_after(now)
    except (ValueError, KeyError):  # a schedule or zone stored before it became invalid
        return None
