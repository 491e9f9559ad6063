"""The original runner's response shapes: its SQLite rows and its camelCase results.

The original answered ``SELECT *`` rows: integers for booleans, JSON columns as
JSON text, NULL for what was never set, and times as SQLite's
``datetime('now')`` text (``YYYY-MM-DD HH:MM:SS`` in UTC).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from runner.models import Job, JobType, Run, RunStatus


def sqlite_time(moment: dt.datetime | None) -> str | None:
    """``moment`` as SQLite's ``datetime('now')`` writes it, in UTC; None stays None."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _json_text(value: Any) -> str | None:
    return json.dumps(value) if value else None


def result_meta(run: Run) -> str | None:
    """What the original kept as ``result_meta``: for a script the ``meta`` member of a
    ``JR_RESULT:{...}`` line, as text; for a session that finished ``ok`` its session key
    (session-executor.ts), else null. An imported run keeps the original's own text."""
    if isinstance(run.result_meta, str):
        return run.result_meta
    if run.job.type == JobType.SESSION:
        key = (run.result_meta or {}).get("sessionKey") if run.status == RunStatus.OK else None
        return key if isinstance(key, str) else None
    meta = (run.result_meta or {}).get("meta")
    if meta is None or isinstance(meta, str):
        return meta
    return json.dumps(meta)


def job_row(job: Job) -> dict[str, Any]:
    """One ``jobs`` row in the original's columns and order."""
    return {
        "id": job.id,
        "name": job.name,
        "schedule": job.schedule,
        "script": job.script,
        "type": job.type,
        "description": job.description or None,
        "enabled": int(job.enabled),
        "timeout_ms": job.timeout_ms,
        "overlap_policy": job.overlap_policy,
        "on_failure": job.on_failure or None,
        "on_success": job.on_success or None,
        "created_at": sqlite_time(job.created_at),
        "updated_at": sqlite_time(job.updated_at),
        "source_type": job.source_type,
        "output_channel": job.output_channel or None,
        "env": _json_text(job.env),
        "args": _json_text(job.args),
    }


def listed_job_row(job: Job) -> dict[str, Any]:
    """A row of ``GET /jobs``: the job's row, its newest run's status and start."""
    return {
        **job_row(job),
        "last_status": job.last_status,
        "last_run": sqlite_time(job.last_run),
    }


def run_row(run: Run) -> dict[str, Any]:
    """One ``runs`` row in the original's columns (``stdout_tail``, ``stderr_tail``)."""
    return {
        "id": run.pk,
        "job_id": run.job_id,
        "status": run.status,
        "started_at": sqlite_time(run.started_at),
        "finished_at": sqlite_time(run.finished_at),
        "duration_ms": run.duration_ms,
        "exit_code": run.exit_code,
        "tokens": run.tokens,
        "result_meta": result_meta(run),
        "error": run.error or None,
        "stdout_tail": run.stdout,
        "stderr_tail": run.stderr,
        "trigger": run.trigger,
    }


def run_result(run: Run) -> dict[str, Any]:
    """A finished run as the original's ``ExecutionResult`` (``POST /jobs/:id/run``)."""
    return {
        "status": run.status,
        "exitCode": run.exit_code,
        "durationMs": run.duration_ms,
        "tokens": run.tokens,
        "resultMeta": result_meta(run),
        "stdoutTail": run.stdout,
        "stderrTail": run.stderr,
        "error": run.error or None,
    }
