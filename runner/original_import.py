"""Bringing an original jeeves-runner database (``runner.sqlite``) into ours.

Reads the original's tables as its migrations leave them (schema version 3 to 6,
see ``runner.original_db``) and writes ours through the same rules every entrance
uses (``upsert_job``, ``upsert_queue_definition``, the models' validation). Rows
already present are left as they are — ours may have moved on since — so a second
import changes nothing. Everything happens in one transaction; ``dry_run`` rolls it
back, so its report counts exactly what a real import would do.

Mapping, where the schemas differ (and why):

- runs: ``stdout_tail``/``stderr_tail`` → ``stdout``/``stderr``; the original's ids
  are kept (an id ours already uses for another run gets a new one); a run left
  ``running`` becomes ``error`` (its process is gone); ``result_meta`` text becomes
  the JSON string; ``scheduled_for`` is unknown (null).
- state values are the original's TEXT, kept as JSON strings (its client reads and
  writes strings); expired values are not imported.
- queues: ``dedup_expr``/``dedup_scope`` → ``dedup_config {path, scope}``,
  ``retention_days`` → ``retention {completed, failed}``; items of a queue with no
  definition get one with the original's defaults (1 attempt, 7 days).
- queue items: ``done`` → ``completed``; ``processing`` → ``pending`` (the original
  has no leases, so its claims cannot carry over; the attempt stays counted);
  de-duplication keys are computed again by ours; a payload that is not JSON is
  kept as a JSON string.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.color import no_style
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from queues.definitions import upsert_queue_definition
from queues.models import ItemStatus, Queue, QueueItem
from runner.jobs import upsert_job
from runner.models import Job, Run, RunStatus, RunTrigger
from runner.original_db import open_original
from runner.original_rules import as_original, original_timeout_ms
from runner.validation import describe
from statestore.models import StateEntry, StateItem

TABLES = ("jobs", "runs", "state", "state_items", "queues", "queue_items")
IMPORTED, PRESENT, NOT_IMPORTED = "imported", "already present", "not imported"
SKIPPED = "skipped"  # on purpose: an expired state value
# The original's defaults for a queue it never defined (client/queue-ops.ts, db/maintenance.ts).
UNDEFINED_QUEUE = {"max_attempts": 1, "retention_days": 7}
ITEM_STATUSES = {
    "pending": ItemStatus.PENDING,
    "processing": ItemStatus.PENDING,
    "done": ItemStatus.COMPLETED,
    "failed": ItemStatus.FAILED,
}


@dataclass
class ImportReport:
    """Counts per table and outcome, and a line for each row not imported or changed in passing."""

    schema_version: int = 0
    counts: dict[str, Counter] = field(default_factory=lambda: {t: Counter() for t in TABLES})
    refused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, table: str, outcome: str, why: str = "") -> None:
        self.counts[table][outcome] += 1
        if why:
            (self.refused if outcome == NOT_IMPORTED else self.notes).append(f"{table}: {why}")


class _DryRun(Exception):
    """Rolls the transaction back at the end of a dry run."""


def import_original_db(path: Path, dry_run: bool = False) -> ImportReport:
    """Import the original database at ``path``; return what was done (or would be).

    Raises ``NotAnOriginalDatabase`` when ``path`` is not one.
    """
    source, version = open_original(path)
    report = ImportReport(schema_version=version)
    try:
        with transaction.atomic():
            _Importer(source, report).run()
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    finally:
        source.close()
    return report


class _Importer:
    def __init__(self, source, report: ImportReport) -> None:
        self.source = source
        self.report = report
        self.jobs: set[str] = set()
        self.queues: dict[str, Queue] = {}

    def source_defines(self, queue_id: str) -> bool:
        found = self.source.execute("SELECT 1 FROM queues WHERE id = ?", (queue_id,)).fetchone()
        return found is not None

    def rows(self, table: str):
        return [dict(row) for row in self.source.execute(f"SELECT * FROM {table}")]

    def run(self) -> None:
        for row in self.rows("jobs"):
            self.job(row)
        self.jobs = set(Job.objects.values_list("id", flat=True))
        for row in self.rows("runs"):
            self.run_row(row)
        for row in self.rows("state"):
            self.state(row)
        for row in self.rows("state_items"):
            self.state_item(row)
        for row in self.rows("queues"):
            self.queue(row)
        for row in self.rows("queue_items"):
            self.queue_item(row)
        _reset_sequences()

    # --- jobs ---------------------------------------------------------------------

    def job(self, row: dict) -> None:
        if Job.objects.filter(pk=row["id"]).exists():
            self.report.count("jobs", PRESENT)
            return
        try:
            fields, notes = job_fields(row)
            with transaction.atomic():
                upsert_job(fields)
        except ValidationError as exc:
            self.report.count("jobs", NOT_IMPORTED, f"{row['id']}: {describe(exc, Job)}")
            return
        self.report.count("jobs", IMPORTED)
        self.report.notes.extend(f"jobs: {row['id']}: {note}" for note in notes)

    # --- runs ---------------------------------------------------------------------

    def run_row(self, row: dict) -> None:
        if row["job_id"] not in self.jobs:
            why = f"run {row['id']}: its job {row['job_id']} was not imported"
            self.report.count("runs", NOT_IMPORTED, why)
            return
        fields = run_fields(row)
        existing = Run.objects.filter(pk=row["id"]).first()
        if existing is not None and _same_run(existing, fields):
            self.report.count("runs", PRESENT)
            return
        if existing is not None:  # ours used the id for another run
            twin = Run.objects.filter(job_id=row["job_id"], started_at=fields["started_at"])
            if twin.filter(finished_at=fields["finished_at"]).exists():
                self.report.count("runs", PRESENT)
                return
            fields.pop("id")
        if row["status"] == "running":
            self.report.notes.append(f"runs: run {row['id']} was running; imported as error")
        run = Run.objects.create(**fields)
        Run.objects.filter(pk=run.pk).update(created_at=fields["started_at"] or timezone.now())
        self.report.count("runs", IMPORTED)

    # --- state --------------------------------------------------------------------

    def state(self, row: dict) -> None:
        expires = parse_time(row.get("expires_at"))
        if expires is not None and expires <= timezone.now():
            why = f"{row['namespace']}/{row['key']}: expired; not imported"
            self.report.count("state", SKIPPED, why)
            return
        if StateEntry.objects.filter(namespace=row["namespace"], key=row["key"]).exists():
            self.report.count("state", PRESENT)
            return
        entry = StateEntry(
            namespace=row["namespace"], key=row["key"], value=row["value"], expires_at=expires
        )
        if not self.valid(entry, "state", f"{row['namespace']}/{row['key']}"):
            return
        entry.save()
        stamp = parse_time(row.get("updated_at")) or timezone.now()
        StateEntry.objects.filter(pk=entry.pk).update(created_at=stamp, updated_at=stamp)
        self.report.count("state", IMPORTED)

    def state_item(self, row: dict) -> None:
        keys = {"namespace": row["namespace"], "key": row["key"], "item_key": row["item_key"]}
        if StateItem.objects.filter(**keys).exists():
            self.report.count("state_items", PRESENT)
            return
        item = StateItem(**keys, value=row["value"])
        where = f"{row['namespace']}/{row['key']}/{row['item_key']}"
        if not self.valid(item, "state_items", where):
            return
        item.save()
        StateItem.objects.filter(pk=item.pk).update(
            created_at=parse_time(row.get("created_at")) or timezone.now(),
            updated_at=parse_time(row.get("updated_at")) or timezone.now(),
        )
        self.report.count("state_items", IMPORTED)

    def valid(self, instance, table: str, where: str) -> bool:
        try:
            instance.full_clean(validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            self.report.count(table, NOT_IMPORTED, f"{where}: {describe(exc)}")
            return False
        return True

    # --- queues -------------------------------------------------------------------

    def queue(self, row: dict, implicit: bool = False) -> Queue | None:
        existing = Queue.objects.filter(pk=row["id"]).first()
        if existing is not None:
            self.report.count("queues", PRESENT)
            return existing
        try:
            with transaction.atomic():
                queue, _ = upsert_queue_definition(queue_fields(row))
        except ValidationError as exc:
            self.report.count("queues", NOT_IMPORTED, f"{row['id']}: {describe(exc)}")
            return None
        why = (
            f"{row['id']}: had no definition; made with the original's defaults" if implicit else ""
        )
        self.report.count("queues", IMPORTED, why)
        return queue

    def queue_for(self, queue_id: str) -> Queue | None:
        if queue_id not in self.queues and self.source_defines(queue_id):
            self.queues[queue_id] = Queue.objects.filter(pk=queue_id).first()
        if queue_id not in self.queues:
            self.queues[queue_id] = self.queue({"id": queue_id, **UNDEFINED_QUEUE}, implicit=True)
        return self.queues[queue_id]

    def queue_item(self, row: dict) -> None:
        where = f"item {row['id']}"
        status = ITEM_STATUSES.get(row["status"] or "pending")
        queue = self.queue_for(row["queue_id"]) if row.get("queue_id") else None
        if queue is None or status is None:
            why = f"status {row['status']!r} is unknown" if queue else "its queue was not imported"
            self.report.count("queue_items", NOT_IMPORTED, f"{where}: {why}")
            return
        fields = item_fields(row, queue, status)
        existing = QueueItem.objects.filter(pk=row["id"]).first()
        if existing is not None:
            if existing.queue_id == queue.id and existing.created_at == fields["created_at"]:
                self.report.count("queue_items", PRESENT)
                return
            same = QueueItem.objects.filter(queue=queue, created_at=fields["created_at"])
            if any(item.payload == fields["payload"] for item in same):
                self.report.count("queue_items", PRESENT)
                return
            fields.pop("id")
        self.insert_item(row, fields, where)

    def insert_item(self, row: dict, fields: dict, where: str) -> None:
        if _json_or_none(row["payload"]) is None and row["payload"] != "null":
            self.report.notes.append(f"queue_items: {where}: payload is not JSON; kept as text")
        if row["status"] == "processing":
            self.report.notes.append(f"queue_items: {where} was being processed; now pending")
        try:
            with transaction.atomic():
                item = QueueItem.objects.create(**fields)
        except IntegrityError:
            # A live item of the queue already holds this de-duplication key.
            self.report.count("queue_items", NOT_IMPORTED, f"{where}: a duplicate of a live item")
            return
        QueueItem.objects.filter(pk=item.pk).update(created_at=fields["created_at"])
        self.report.count("queue_items", IMPORTED)


# --- row mapping ----------------------------------------------------------------------


def job_fields(row: dict) -> tuple[dict[str, Any], list[str]]:
    """An original ``jobs`` row as ``upsert_job`` fields (every field, nulls as defaults),
    with the original's meaning (``runner.original_rules``), and notes on what was read
    differently."""
    timeout_ms, timeout_note = original_timeout_ms(row.get("timeout_ms"))
    fields, notes = as_original(
        {
            "id": row["id"],
            "name": row["name"],
            "schedule": row["schedule"],
            "script": row["script"],
            "type": row.get("type") or "script",
            "source_type": row.get("source_type") or "path",
            "description": row.get("description") or "",
            "enabled": bool(row["enabled"] if row.get("enabled") is not None else 1),
            "timeout_ms": timeout_ms,
            "overlap_policy": row.get("overlap_policy") or "skip",
            "on_failure": row.get("on_failure") or "",
            "on_success": row.get("on_success") or "",
            "output_channel": row.get("output_channel") or "",
            "env": _json_or_none(row.get("env")) or {},
            "args": _json_or_none(row.get("args")) or [],
        }
    )
    return fields, [note for note in (timeout_note, *notes) if note]


def run_fields(row: dict) -> dict[str, Any]:
    """An original ``runs`` row as ``Run`` fields."""
    status = row["status"]
    error = row.get("error") or ""
    finished = parse_time(row.get("finished_at"))
    if status == "running":
        status = RunStatus.ERROR
        error = "was running when the original jeeves-runner stopped (imported)"
    elif status not in RunStatus.values:
        error = f"{error} (the original's status was {status!r})".strip()
        status = RunStatus.ERROR
    stdout, stderr = row.get("stdout_tail") or "", row.get("stderr_tail") or ""
    meta = row.get("result_meta")
    return {
        "id": row["id"],
        "job_id": row["job_id"],
        "status": status,
        "trigger": row["trigger"] if row.get("trigger") in RunTrigger.values else "manual",
        "started_at": parse_time(row.get("started_at")),
        "finished_at": finished,
        "duration_ms": row.get("duration_ms"),
        "exit_code": row.get("exit_code"),
        "tokens": row["tokens"] if isinstance(row.get("tokens"), int) else None,
        "result_meta": meta,
        "error": error,
        "stdout": stdout,
        "stderr": stderr,
        "stdout_bytes": len(stdout.encode()),
        "stderr_bytes": len(stderr.encode()),
    }


def _same_run(run: Run, fields: dict) -> bool:
    return run.job_id == fields["job_id"] and run.started_at == fields["started_at"]


def queue_fields(row: dict) -> dict[str, Any]:
    """An original ``queues`` row as a definition for ``upsert_queue_definition``."""
    days = row.get("retention_days") or UNDEFINED_QUEUE["retention_days"]
    expression = row.get("dedup_expr")
    return {
        "id": row["id"],
        "name": row.get("name") or "",
        "description": row.get("description") or "",
        "dedup_config": (
            {"path": expression, "scope": row.get("dedup_scope") or "pending"}
            if expression
            else None
        ),
        "retention": {"completed": f"{days}d", "failed": f"{days}d"},
        "max_attempts": row.get("max_attempts") or 1,
    }


def item_fields(row: dict, queue: Queue, status: str) -> dict[str, Any]:
    """An original ``queue_items`` row as ``QueueItem`` fields."""
    payload = _json_or_none(row["payload"])
    if payload is None and row["payload"] != "null":
        payload = row["payload"]
    finished = status in (ItemStatus.COMPLETED, ItemStatus.FAILED)
    return {
        "id": row["id"],
        "queue": queue,
        "payload": payload,
        "status": status,
        "priority": row.get("priority") or 0,
        "dedup_key": queue.dedup_key_for(payload),
        "attempts": row.get("attempts") or 0,
        "max_attempts": max(1, row.get("max_attempts") or 1),
        "error": row.get("error") or "",
        "created_at": parse_time(row.get("created_at")) or timezone.now(),
        "completed_at": parse_time(row.get("finished_at")) if finished else None,
    }


def parse_time(text: str | None) -> datetime | None:
    """The original's times: ``datetime('now')`` text (UTC) or JavaScript ISO strings."""
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _json_or_none(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _reset_sequences() -> None:
    """After explicit ids, PostgreSQL's sequences must move past them (SQLite does it itself)."""
    statements = connection.ops.sequence_reset_sql(no_style(), [Run, QueueItem])
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
